# The padding study: padded-vs-alone differences per layer and pooling, precision, attention
# implementation, padding side and device (results/padding/{model}/).


rule padding:
    input:
        unpack(model_files),
        corpus="results/corpus/corpus.parquet",
        code=modules_of("padding.py"),
    output:
        differences="results/padding/{model}/differences.parquet",
        summary="results/padding/{model}/summary.tsv",
        verdict="results/padding/{model}/verdict.tsv",
        study="results/padding/{model}/study.json",
        verdict_html=report(
            "results/padding/{model}/verdict.html",
            caption="../report/padding_verdict.rst",
            category="Padding",
            subcategory="{model}",
            labels={"model": "{model}", "table": "verdict"},
        ),
        summary_html=report(
            "results/padding/{model}/summary.html",
            caption="../report/padding_summary.rst",
            category="Padding",
            subcategory="{model}",
            labels={"model": "{model}", "table": "per layer and pooling"},
        ),
        histograms=report(
            "results/padding/{model}/histograms.png",
            caption="../report/padding_histograms.rst",
            category="Padding",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "histograms"},
        ),
        growth=report(
            "results/padding/{model}/growth.png",
            caption="../report/padding_growth.rst",
            category="Padding",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "growth over layers"},
        ),
    log:
        "results/logs/padding/{model}.log",
    benchmark:
        "results/benchmarks/padding/{model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: stage_threads("padding")
    resources:
        gpu=gpu_resources("padding"),
    params:
        model=model_params,
        padding=config["padding"],
    script:
        "../scripts/padding.py"

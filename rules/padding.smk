# Analysis stages per model: the padding-difference study and the model-internals checks.


rule padding:
    input:
        unpack(model_files),
        corpus="results/corpus/corpus.parquet",
        code=lib("models", "modelstage", "padding"),
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
        "../scripts/padding_study.py"


rule internals:
    input:
        unpack(model_files),
        corpus="results/corpus/corpus.parquet",
        code=lib("models", "modelstage", "padding", "internals"),
    output:
        checks="results/internals/{model}/checks.tsv",
        parameters="results/internals/{model}/parameters.tsv",
        checks_html=report(
            "results/internals/{model}/checks.html",
            caption="../report/internals_checks.rst",
            category="Internals",
            subcategory="{model}",
            labels={"model": "{model}", "table": "rebuilt by hand"},
        ),
        parameters_html=report(
            "results/internals/{model}/parameters.html",
            caption="../report/internals_parameters.rst",
            category="Internals",
            subcategory="{model}",
            labels={"model": "{model}", "table": "parameters"},
        ),
    log:
        "results/logs/internals/{model}.log",
    benchmark:
        "results/benchmarks/internals/{model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: stage_threads("internals")
    params:
        model=model_params,
        internals=config["internals"],
    script:
        "../scripts/internals.py"

# BERT rebuilt by hand against the model, and parameter counts (results/internals/{model}/).


rule internals:
    input:
        unpack(model_files),
        corpus="results/corpus/corpus.parquet",
        code=modules_of("internals.py"),
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

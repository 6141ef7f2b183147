# TensorBoard Embedding Projector files (results/export/{model}/).


rule export_projector:
    input:
        vocab="results/embeddings/{model}/vocab.npy",
        vocab_table="results/embeddings/{model}/vocab.parquet",
        sent_cls="results/embeddings/{model}/sentences_cls.npy",
        sent_mean="results/embeddings/{model}/sentences_mean.npy",
        sent_pooler="results/embeddings/{model}/sentences_pooler.npy",
        facts="results/embeddings/{model}/facts.json",
        vocab_projection="results/projection/{model}/vocab.parquet",
        sentence_projection="results/projection/{model}/sentences.parquet",
        code=modules_of("export_projector.py"),
    output:
        folder=directory("results/export/{model}"),
    log:
        "results/logs/export/{model}.log",
    benchmark:
        "results/benchmarks/export/{model}.tsv"
    conda:
        "../envs/plots.yaml"
    params:
        sentence_layers=(
            "all"
            if config["export"]["sentence_layers"] == "all"
            else config["projection"]["sentences"]["layers"]
        ),
    script:
        "../scripts/export_projector.py"

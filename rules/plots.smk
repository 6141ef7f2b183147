# Static PNGs of the projections (results/plots/{model}/).


rule plot_vocab_png:
    input:
        vocab="results/projection/{model}/vocab.parquet",
        code=modules_of("plot_vocab.py"),
    output:
        report(
            "results/plots/{model}/vocab_{method}.png",
            caption="../report/vocab_png.rst",
            category="Embeddings",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "vocabulary {method}"},
        ),
    log:
        "results/logs/plot/{model}.vocab_{method}.log",
    wildcard_constraints:
        method="tsne|pca|umap",
    conda:
        "../envs/plots.yaml"
    params:
        label_count=config["plots"]["label_count"],
    script:
        "../scripts/plot_vocab.py"


rule plot_sentences_png:
    input:
        sentences="results/projection/{model}/sentences.parquet",
        code=modules_of("plot_sentences.py"),
    output:
        report(
            "results/plots/{model}/sentences.png",
            caption="../report/sentences_png.rst",
            category="Embeddings",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "sentences by layer"},
        ),
    log:
        "results/logs/plot/{model}.sentences.log",
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/plot_sentences.py"

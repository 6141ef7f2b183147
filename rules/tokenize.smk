rule tokenize:
    input:
        unpack(model_files),
        corpus="results/corpus/corpus.parquet",
        code=lib("tokenstats", "models", "modelstage", "plotting"),
    output:
        tokens="results/tokens/{model}/tokens.parquet",
        stats="results/tokens/{model}/stats.json",
        top_csv="results/tokens/{model}/top_tokens.csv",
        subwords_csv="results/tokens/{model}/subwords.csv",
        stats_html=report(
            "results/tokens/{model}/stats.html",
            caption="../report/token_stats.rst",
            category="Tokens",
            subcategory="{model}",
            labels={"model": "{model}", "table": "statistics"},
        ),
        hist=report(
            "results/tokens/{model}/length_hist.png",
            caption="../report/token_lengths.rst",
            category="Tokens",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "sentence lengths"},
        ),
        top_html=report(
            "results/tokens/{model}/top_tokens.html",
            caption="../report/token_top.rst",
            category="Tokens",
            subcategory="{model}",
            labels={"model": "{model}", "table": "frequent tokens"},
        ),
        subwords_html=report(
            "results/tokens/{model}/subwords.html",
            caption="../report/token_subwords.rst",
            category="Tokens",
            subcategory="{model}",
            labels={"model": "{model}", "table": "subword splits"},
        ),
    log:
        "results/logs/tokenize/{model}.log",
    conda:
        "../envs/torch.yaml"
    params:
        model=model_params,
        max_unk_rate=config["tokens"]["max_unk_rate"],
    script:
        "../scripts/tokenize_corpus.py"


rule embed:
    input:
        unpack(model_files),
        tokens="results/tokens/{model}/tokens.parquet",
        code=lib("embeddings", "spread", "models", "modelstage", "tokenstats"),
    output:
        vocab="results/embeddings/{model}/vocab.npy",
        vocab_table="results/embeddings/{model}/vocab.parquet",
        sent_cls="results/embeddings/{model}/sentences_cls.npy",
        sent_mean="results/embeddings/{model}/sentences_mean.npy",
        sent_pooler="results/embeddings/{model}/sentences_pooler.npy",
        facts="results/embeddings/{model}/facts.json",
    log:
        "results/logs/embed/{model}.log",
    benchmark:
        "results/benchmarks/embed/{model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: stage_threads("embed")
    resources:
        gpu=gpu_resources("embed"),
    params:
        model=model_params,
        embeddings=config["embeddings"],
        device=config["device"],
    script:
        "../scripts/embed.py"


rule project:
    input:
        corpus="results/corpus/corpus.parquet",
        tokens="results/tokens/{model}/tokens.parquet",
        vocab="results/embeddings/{model}/vocab.npy",
        vocab_table="results/embeddings/{model}/vocab.parquet",
        sent_cls="results/embeddings/{model}/sentences_cls.npy",
        sent_mean="results/embeddings/{model}/sentences_mean.npy",
        sent_pooler="results/embeddings/{model}/sentences_pooler.npy",
        facts="results/embeddings/{model}/facts.json",
        code=lib("projection", "embeddings", "config", "spread", "modelstage", "models"),
    output:
        table="results/projection/{model}/{target}.parquet",
        facts="results/projection/{model}/{target}.json",
    log:
        "results/logs/project/{model}.{target}.log",
    benchmark:
        "results/benchmarks/project/{model}.{target}.tsv"
    wildcard_constraints:
        target="vocab|sentences",
    conda:
        "../envs/projection.yaml"
    threads: stage_threads("tsne")
    params:
        target=lambda wc: config["projection"][wc.target],
        tsne=config["projection"]["tsne"],
        # only when UMAP is one of the methods: other projections do not rerun on its settings
        umap=lambda wc: (
            config["projection"]["umap"]
            if "umap" in config["projection"][wc.target]["methods"]
            else None
        ),
        column=lambda wc: MODELS[wc.model]["column"],
    script:
        "../scripts/project.py"


rule plot_vocab_png:
    input:
        vocab="results/projection/{model}/vocab.parquet",
        code=lib("plotting"),
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
        code=lib("plotting"),
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

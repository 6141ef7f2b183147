# Nearest neighbours in the original spaces: k-NN of every vocabulary entry and sentence
# vector (exact, or approximate with its recall measured) and the probe neighbour tables
# (results/neighbors/{model}/).


rule knn:
    input:
        vocab="results/embeddings/{model}/vocab.npy",
        sent_cls="results/embeddings/{model}/sentences_cls.npy",
        sent_mean="results/embeddings/{model}/sentences_mean.npy",
        sent_pooler="results/embeddings/{model}/sentences_pooler.npy",
        facts="results/embeddings/{model}/facts.json",
        code=modules_of("knn.py"),
    output:
        vocab_knn="results/neighbors/{model}/vocab_knn.npz",
        sentences_knn="results/neighbors/{model}/sentences_knn.npz",
        facts="results/neighbors/{model}/knn.json",
        summary_html=report(
            "results/neighbors/{model}/knn.html",
            caption="../report/explore_knn.rst",
            category="Neighbours",
            subcategory="{model}",
            labels={"model": "{model}", "table": "k-NN search"},
        ),
    log:
        "results/logs/knn/{model}.log",
    benchmark:
        "results/benchmarks/knn/{model}.tsv"
    conda:
        "../envs/projection.yaml"
    threads: stage_threads("knn")
    params:
        k=config["explore"]["k"],
        knn=config["explore"]["knn"],
    script:
        "../scripts/knn.py"


rule probe_neighbors:
    input:
        unpack(model_files),
        corpus="results/corpus/corpus.parquet",
        vocab="results/embeddings/{model}/vocab.npy",
        vocab_table="results/embeddings/{model}/vocab.parquet",
        sent_cls="results/embeddings/{model}/sentences_cls.npy",
        sent_mean="results/embeddings/{model}/sentences_mean.npy",
        sent_pooler="results/embeddings/{model}/sentences_pooler.npy",
        facts="results/embeddings/{model}/facts.json",
        code=modules_of("probe_neighbors.py"),
    output:
        tokens_csv="results/neighbors/{model}/probe_tokens.csv",
        tokens_html=report(
            "results/neighbors/{model}/probe_tokens.html",
            caption="../report/explore_probe_tokens.rst",
            category="Neighbours",
            subcategory="{model}",
            labels={"model": "{model}", "table": "probe tokens"},
        ),
        sentences_csv="results/neighbors/{model}/probe_sentences.csv",
        sentences_html=report(
            "results/neighbors/{model}/probe_sentences.html",
            caption="../report/explore_probe_sentences.rst",
            category="Neighbours",
            subcategory="{model}",
            labels={"model": "{model}", "table": "probe sentences"},
        ),
    log:
        "results/logs/probe_neighbors/{model}.log",
    conda:
        "../envs/torch.yaml"
    threads: stage_threads("probe_neighbors")
    params:
        model=model_params,
        k=config["explore"]["k"],
        # only the probes of the model's own column: editing another column's reruns nothing here
        probes=lambda wc: {
            kind: config["explore"]["probes"][kind].get(MODELS[wc.model]["column"], [])
            for kind in ("tokens", "sentences")
        },
        layers=config["explore"]["probes"]["layers"],
        poolings=config["explore"]["probes"]["poolings"],
    script:
        "../scripts/probe_neighbors.py"

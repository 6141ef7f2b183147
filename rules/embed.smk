# Sentence vectors of every layer and pooling, and the whole input embedding matrix, of one
# model (results/embeddings/{model}/).


rule embed:
    input:
        unpack(model_files),
        tokens="results/tokens/{model}/tokens.parquet",
        code=modules_of("embed.py"),
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

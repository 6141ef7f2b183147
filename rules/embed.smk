# The whole input embedding matrix, and sentence vectors of every layer and pooling, of one
# model (results/embeddings/{model}/). Two rules: the matrix needs no forward pass, so the
# embeddings settings (precision, batch size) rerun neither it nor the vocabulary maps and their
# PNGs (the knn job searches both matrices, so it and the token explorer page still rerun).


rule vocab_matrix:
    input:
        unpack(model_files),
        tokens="results/tokens/{model}/tokens.parquet",
        code=modules_of("vocab_matrix.py"),
    output:
        vocab="results/embeddings/{model}/vocab.npy",
        vocab_table="results/embeddings/{model}/vocab.parquet",
    log:
        "results/logs/vocab_matrix/{model}.log",
    benchmark:
        "results/benchmarks/vocab_matrix/{model}.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        model=model_params,
    script:
        "../scripts/vocab_matrix.py"


rule embed:
    input:
        unpack(model_files),
        tokens="results/tokens/{model}/tokens.parquet",
        code=modules_of("embed.py"),
    output:
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

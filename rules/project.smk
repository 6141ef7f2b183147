# t-SNE, PCA and UMAP coordinates of the input matrix and the sentence vectors
# (results/projection/{model}/).


rule project:
    input:
        unpack(projection_inputs),
        code=modules_of("project.py"),
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
        column=lambda wc: (
            MODELS[wc.model]["column"] if wc.target == "sentences" else None
        ),
    script:
        "../scripts/project.py"

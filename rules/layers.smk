# The layer lens: token-level contextual vectors of a corpus sample at every layer, and what
# each layer knows (contextuality, probes, CKA, logit lens), as the report's "Layers" chapter.


rule layer_vectors:
    input:
        unpack(model_files),
        corpus="results/corpus/corpus.parquet",
        tokens="results/tokens/{model}/tokens.parquet",
        code=modules_of("layer_vectors.py"),
    output:
        vectors="results/layers/{model}/vectors.npy",
        table="results/layers/{model}/tokens.parquet",
        facts="results/layers/{model}/vectors.json",
    log:
        "results/logs/layers/{model}.vectors.log",
    benchmark:
        "results/benchmarks/layers/{model}.vectors.tsv"
    conda:
        "../envs/layers.yaml"
    threads: stage_threads("layers")
    resources:
        gpu=gpu_resources("layers"),
    params:
        model=model_params,
        layers=layer_settings("sentences", "seed", "batch_size"),
        device=config["device"],
    script:
        "../scripts/layer_vectors.py"


rule layer_measures:
    input:
        vectors="results/layers/{model}/vectors.npy",
        table="results/layers/{model}/tokens.parquet",
        facts="results/layers/{model}/vectors.json",
        code=modules_of("layer_measures.py"),
    output:
        measures="results/layers/{model}/measures.tsv",
        measures_html=report(
            "results/layers/{model}/measures.html",
            caption="../report/layers_measures.rst",
            category="Layers",
            subcategory="{model}",
            labels={"model": "{model}", "table": "contextuality"},
        ),
        cka="results/layers/{model}/cka.tsv",
        cka_png=report(
            "results/layers/{model}/cka.png",
            caption="../report/layers_cka.rst",
            category="Layers",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "CKA between layers"},
        ),
    log:
        "results/logs/layers/{model}.measures.log",
    benchmark:
        "results/benchmarks/layers/{model}.measures.tsv"
    conda:
        "../envs/layers.yaml"
    threads: stage_threads("layers")
    params:
        layers=layer_settings("min_occurrences", "anisotropy_pairs", "seed"),
    script:
        "../scripts/layer_measures.py"


rule layer_probes:
    input:
        vectors="results/layers/{model}/vectors.npy",
        table="results/layers/{model}/tokens.parquet",
        facts="results/layers/{model}/vectors.json",
        code=modules_of("layer_probes.py"),
    output:
        probes="results/layers/{model}/probes.tsv",
        probes_html=report(
            "results/layers/{model}/probes.html",
            caption="../report/layers_probes.rst",
            category="Layers",
            subcategory="{model}",
            labels={"model": "{model}", "table": "probes"},
        ),
        probes_png=report(
            "results/layers/{model}/probes.png",
            caption="../report/layers_probes.rst",
            category="Layers",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "probes"},
        ),
    log:
        "results/logs/layers/{model}.probes.log",
    benchmark:
        "results/benchmarks/layers/{model}.probes.tsv"
    conda:
        "../envs/layers.yaml"
    threads: stage_threads("layers")
    params:
        layers=layer_settings("probe_test_fraction", "probe_max_iter", "seed"),
    script:
        "../scripts/layer_probes.py"


rule layer_column:
    input:
        measures=lambda wc: expand(
            "results/layers/{model}/measures.tsv", model=column_models(wc.column)
        ),
        code=modules_of("layer_column.py"),
    output:
        **{
            m: report(
                f"results/layers/column_{{column}}/{m}.png",
                caption=f"../report/layers_{m}.rst",
                category="Layers",
                subcategory="column {column}",
                labels={"column": "{column}", "figure": m.replace("_", " ")},
            )
            for m in (
                "anisotropy",
                "self_similarity",
                "intra_sentence_similarity",
                "mev",
            )
        },
        table=report(
            "results/layers/column_{column}/measures.html",
            caption="../report/layers_measures.rst",
            category="Layers",
            subcategory="column {column}",
            labels={"column": "{column}", "table": "contextuality"},
        ),
    log:
        "results/logs/layers/column_{column}.log",
    conda:
        "../envs/layers.yaml"
    params:
        models=lambda wc: column_models(wc.column),
    script:
        "../scripts/layer_column.py"


rule layer_cka_pair:
    input:
        vectors_a="results/layers/{a}/vectors.npy",
        table_a="results/layers/{a}/tokens.parquet",
        vectors_b="results/layers/{b}/vectors.npy",
        table_b="results/layers/{b}/tokens.parquet",
        code=modules_of("layer_cka_pair.py"),
    output:
        cka="results/layers/{a}_vs_{b}/cka.tsv",
        png=report(
            "results/layers/{a}_vs_{b}/cka.png",
            caption="../report/layers_cka_pair.rst",
            category="Layers",
            subcategory="{a} vs {b}",
            labels={"models": "{a} vs {b}", "figure": "CKA between models"},
        ),
    log:
        "results/logs/layers/{a}_vs_{b}.cka.log",
    wildcard_constraints:
        a="|".join(MODELS) or "NO_MODEL",
        b="|".join(MODELS) or "NO_MODEL",
    conda:
        "../envs/layers.yaml"
    script:
        "../scripts/layer_cka_pair.py"


rule logit_lens:
    input:
        unpack(model_files),
        corpus="results/corpus/corpus.parquet",
        tokens="results/tokens/{model}/tokens.parquet",
        code=modules_of("logit_lens.py"),
    output:
        table="results/layers/{model}/logit_lens.tsv",
        html=report(
            "results/layers/{model}/logit_lens.html",
            caption="../report/layers_logit_lens.rst",
            category="Layers",
            subcategory="{model}",
            labels={"model": "{model}", "table": "logit lens"},
        ),
        png=report(
            "results/layers/{model}/logit_lens.png",
            caption="../report/layers_logit_lens.rst",
            category="Layers",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "logit lens"},
        ),
    log:
        "results/logs/layers/{model}.logit_lens.log",
    benchmark:
        "results/benchmarks/layers/{model}.logit_lens.tsv"
    conda:
        "../envs/layers.yaml"
    threads: stage_threads("layers")
    resources:
        gpu=gpu_resources("layers"),
    params:
        model=model_params,
        layers=layer_settings(
            "logit_lens_sentences", "mask_probability", "seed", "batch_size"
        ),
        training=layer_training,
        device=config["device"],
    script:
        "../scripts/logit_lens.py"

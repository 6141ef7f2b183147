# The interactive explorer pages of one model (results/explore/{model}/) and the side-by-side
# comparison of two models on the same column (results/compare/{a}_vs_{b}/).
import re


rule explore_vocab:
    input:
        projection="results/projection/{model}/vocab.parquet",
        vocab_table="results/embeddings/{model}/vocab.parquet",
        knn="results/neighbors/{model}/vocab_knn.npz",
        knn_facts="results/neighbors/{model}/knn.json",
        projection_facts="results/projection/{model}/vocab.json",
        code=modules_of("explore.py"),
    output:
        html=report(
            "results/explore/{model}/vocab.html",
            caption="../report/explore_vocab.rst",
            category="Explorer",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "token explorer"},
        ),
    log:
        "results/logs/explore/{model}.vocab.log",
    conda:
        "../envs/plots.yaml"
    params:
        max_points=config["explore"]["max_points"]["vocab"],
        raster_above=config["explore"]["raster_above"],
        methods=config["projection"]["vocab"]["methods"],
        # Japanese models: colour tokens by the part of speech of the word they start
        mecab_dic=lambda wc: (
            None
            if MODELS[wc.model]["column"] == "en"
            else MODELS[wc.model]["mecab_dic"]
        ),
    script:
        "../scripts/explore.py"


rule explore_sentences:
    input:
        projection="results/projection/{model}/sentences.parquet",
        vocab_table="results/embeddings/{model}/vocab.parquet",
        tokens="results/tokens/{model}/tokens.parquet",
        knn="results/neighbors/{model}/sentences_knn.npz",
        knn_facts="results/neighbors/{model}/knn.json",
        projection_facts="results/projection/{model}/sentences.json",
        sent_cls="results/embeddings/{model}/sentences_cls.npy",
        sent_mean="results/embeddings/{model}/sentences_mean.npy",
        sent_pooler="results/embeddings/{model}/sentences_pooler.npy",
        code=modules_of("explore.py"),
    output:
        html=report(
            "results/explore/{model}/sentences.html",
            caption="../report/explore_sentences.rst",
            category="Explorer",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "sentence explorer"},
        ),
    log:
        "results/logs/explore/{model}.sentences.log",
    conda:
        "../envs/plots.yaml"
    params:
        max_points=config["explore"]["max_points"]["sentences"],
        raster_above=config["explore"]["raster_above"],
        methods=config["projection"]["sentences"]["methods"],
        clusters=config["explore"]["clusters"],
    script:
        "../scripts/explore.py"


rule compare:
    input:
        knn_a="results/neighbors/{a}/sentences_knn.npz",
        knn_b="results/neighbors/{b}/sentences_knn.npz",
        facts_a="results/embeddings/{a}/facts.json",
        facts_b="results/embeddings/{b}/facts.json",
        projection_a="results/projection/{a}/sentences.parquet",
        projection_b="results/projection/{b}/sentences.parquet",
        tokens_a="results/tokens/{a}/tokens.parquet",
        tokens_b="results/tokens/{b}/tokens.parquet",
        vocab_a="results/embeddings/{a}/vocab.parquet",
        vocab_b="results/embeddings/{b}/vocab.parquet",
        code=modules_of("compare.py"),
    output:
        csv="results/compare/{a}_vs_{b}/overlap.csv",
        html=report(
            "results/compare/{a}_vs_{b}/overlap.html",
            caption="../report/explore_overlap.rst",
            category="Comparison",
            subcategory="{a} vs {b}",
            labels={"models": "{a} vs {b}", "table": "neighbourhood overlap"},
        ),
        png=report(
            "results/compare/{a}_vs_{b}/overlap.png",
            caption="../report/explore_overlap_png.rst",
            category="Comparison",
            subcategory="{a} vs {b}",
            labels={"models": "{a} vs {b}", "figure": "overlap by layer"},
        ),
        page=report(
            "results/compare/{a}_vs_{b}/side_by_side.html",
            caption="../report/explore_compare.rst",
            category="Comparison",
            subcategory="{a} vs {b}",
            labels={"models": "{a} vs {b}", "figure": "side by side (interactive)"},
        ),
    log:
        "results/logs/compare/{a}_vs_{b}.log",
    wildcard_constraints:
        a="|".join(re.escape(m) for m in MODELS) or "NO_MODEL",
        b="|".join(re.escape(m) for m in MODELS) or "NO_MODEL",
    conda:
        "../envs/plots.yaml"
    params:
        max_points=config["explore"]["max_points"]["sentences"],
        raster_above=config["explore"]["raster_above"],
    script:
        "../scripts/compare.py"

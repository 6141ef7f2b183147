# Exploring embeddings: k-NN in the original spaces (exact, or approximate with its recall
# measured), probe neighbour tables, interactive explorer pages, side-by-side comparison of
# models on the same column, attention of probes.
import re


rule knn:
    input:
        vocab="results/embeddings/{model}/vocab.npy",
        sent_cls="results/embeddings/{model}/sentences_cls.npy",
        sent_mean="results/embeddings/{model}/sentences_mean.npy",
        sent_pooler="results/embeddings/{model}/sentences_pooler.npy",
        facts="results/embeddings/{model}/facts.json",
        code=lib("neighbors", "config", "spread", "modelstage", "models", "sampling"),
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
        "../scripts/neighbors.py"


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
        code=lib(
            "neighbors",
            "config",
            "models",
            "modelstage",
            "embeddings",
            "spread",
            "tokenstats",
            "corpus",
            "readers",
            "sampling",
        ),
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
        "../scripts/neighbors.py"


rule explore_vocab:
    input:
        projection="results/projection/{model}/vocab.parquet",
        vocab_table="results/embeddings/{model}/vocab.parquet",
        knn="results/neighbors/{model}/vocab_knn.npz",
        knn_facts="results/neighbors/{model}/knn.json",
        projection_facts="results/projection/{model}/vocab.json",
        code=lib(
            "explorer",
            "neighbors",
            "pages",
            "models",
            "explorer_page",
            "explorer_js",
            "sampling",
        ),
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
        code=lib(
            "explorer",
            "neighbors",
            "pages",
            "explorer_page",
            "explorer_js",
            "sampling",
        ),
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
        code=lib(
            "explorer",
            "neighbors",
            "plotting",
            "pages",
            "spread",
            "explorer_page",
            "explorer_js",
            "sampling",
        ),
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


rule attention:
    input:
        unpack(model_files),
        code=lib("attention", "models", "modelstage", "pages"),
    output:
        npz="results/attention/{model}/attention.npz",
        json="results/attention/{model}/attention.json",
    log:
        "results/logs/attention/{model}.log",
    conda:
        "../envs/torch.yaml"
    threads: stage_threads("attention")
    params:
        model=model_params,
        probes=lambda wc: config["explore"]["probes"]["sentences"].get(
            MODELS[wc.model]["column"], []
        ),
        max_tokens=config["explore"]["attention"]["max_tokens"],
    script:
        "../scripts/attention.py"


rule attention_png:
    input:
        npz="results/attention/{model}/attention.npz",
        json="results/attention/{model}/attention.json",
        code=lib("attention", "plotting", "pages"),
    output:
        report(
            "results/attention/{model}/probe{i}.png",
            caption="../report/explore_attention_png.rst",
            category="Attention",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "attention heads, probe {i}"},
        ),
    log:
        "results/logs/attention/{model}.probe{i}.log",
    wildcard_constraints:
        i="[1-9][0-9]*",
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/attention.py"


rule attention_page:
    input:
        npz="results/attention/{model}/attention.npz",
        json="results/attention/{model}/attention.json",
        code=lib("attention", "pages"),
    output:
        report(
            "results/attention/{model}/attention.html",
            caption="../report/explore_attention_html.rst",
            category="Attention",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "attention (interactive)"},
        ),
    log:
        "results/logs/attention/{model}.page.log",
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/attention.py"


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
        code=lib(
            "export",
            "explorer",
            "pages",
            "neighbors",
            "config",
            "spread",
            "explorer_page",
            "explorer_js",
            "sampling",
        ),
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
        "../scripts/export.py"

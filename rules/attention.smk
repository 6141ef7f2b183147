# Attention of the probe sentences: weights, a heatmap grid per probe and the interactive page
# (results/attention/{model}/).


rule attention:
    input:
        unpack(model_files),
        code=modules_of("attention.py"),
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
        code=modules_of("attention.py"),
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
        code=modules_of("attention.py"),
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

# Top-k fill-mask predictions for the probe sentences of models with an MLM head
# (results/fill_mask/{model}.*).


rule fill_mask:
    input:
        unpack(model_files),
        code=modules_of("fill_mask.py"),
    output:
        csv="results/fill_mask/{model}.csv",
        html=report(
            "results/fill_mask/{model}.html",
            caption="../report/fill_mask.rst",
            category="Fill-mask",
            subcategory="{model}",
            labels={"model": "{model}", "table": "fill-mask"},
        ),
    log:
        "results/logs/fill_mask/{model}.log",
    conda:
        "../envs/torch.yaml"
    threads: stage_threads("fill_mask")
    params:
        model=model_params,
        # only the probes of the model's own column: editing another column's reruns nothing here
        probes=lambda wc: config["fill_mask"]["probes"].get(
            MODELS[wc.model]["column"], []
        ),
        top_k=config["fill_mask"]["top_k"],
    script:
        "../scripts/fill_mask.py"

"""Layer lens, part 4: linear CKA between the layers of two models on the same column, on the
word occurrences both models saw (a word's vector is the mean of its pieces)."""

from bertlens.contextuality import cka_frame, cka_matrix, shared_words
from bertlens.io import read_table, write_sidecar, write_table
from bertlens.layerplots import cka_png
from bertlens.layers import load_vectors, word_vectors
from bertlens.stage import UserError, run


def main(sm):
    a, b = sm.wildcards.a, sm.wildcards.b
    wa, ta = word_vectors(load_vectors(sm.input.vectors_a), read_table(sm.input.table_a))
    wb, tb = word_vectors(load_vectors(sm.input.vectors_b), read_table(sm.input.table_b))
    ia, ib, n = shared_words(ta, tb)
    if n < 10:
        raise UserError(
            f"models '{a}' and '{b}' share only {n} word occurrences in their layer samples; "
            "raise layers: sentences in the config"
        )
    matrix = cka_matrix(wa[:, ia], wb[:, ib])
    write_table(sm.output.cka, cka_frame(matrix, a.replace("-", "_"), b.replace("-", "_")))
    cka_png(matrix, a, b, f"linear CKA, {a} vs {b} ({n} shared words)", sm.output.png)
    write_sidecar(sm.output.cka, models=[a, b], shared_words=n)


run(snakemake, main)

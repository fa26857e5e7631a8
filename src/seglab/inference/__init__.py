"""From a trained or published model to answers: `seglab-eval` on a labelled split
(`evaluation`), `seglab-predict` on pictures and videos (`prediction`: whole, slide, TTA,
pseudo-labels), `seglab-export` with parity checks (`export`), and the model card and loading
they share. Imports engine (evaluation tests with Lightning), runs, models, data and core."""

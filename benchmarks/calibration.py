"""Temperature scaling on saved study runs: calibration before and after a temperature fitted on val.

``examples/mobilenet_vs_cnn.py --out DIR`` saves the split and both trained models
(``DIR/split.json``, ``DIR/<backbone>.keras``, ``DIR/cnn_from_scratch.keras``). This
script loads each model, drops any temperature it was saved with (a study run fits
one by default), scores the plain probabilities on the validation and the test part,
fits a temperature on the validation part (``FineTuner.calibrate``, Guo et al. 2017),
and scores both parts again. It prints one JSON line per model: the temperature and,
for each part, the expected calibration error (15 bins) and the mean negative
log-likelihood, plain and scaled. Accuracy does not move: a temperature never
changes the predicted class.

The temperature is fitted on validation only; the test columns say whether it holds
on images it never saw.

Usage::

    python examples/mobilenet_vs_cnn.py --out runs/a      # one study run (about 9 minutes)
    python benchmarks/calibration.py runs/a runs/b --root PATH  # PATH: the split's images

``--root`` defaults to the images of the ``elpv-dataset`` package (the study's data).
"""

from __future__ import annotations

import argparse
import json

from _args import add_study_runs, study_models


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_study_runs(p)
    args = p.parse_args()

    from tlkit._calibration import expected_calibration_error, negative_log_likelihood

    def scores(tuner, part) -> list[float]:
        probs = tuner.predict(part).probabilities
        return [
            round(expected_calibration_error(part.labels, probs), 4),
            round(negative_log_likelihood(part.labels, probs), 4),
        ]

    for run, split, path, tuner in study_models(args.runs, args.root):
        tuner.temperature = None  # the plain model's probabilities first
        plain = {part: scores(tuner, getattr(split, part)) for part in ("val", "test")}
        temperature = tuner.calibrate(split.val)
        scaled = {part: scores(tuner, getattr(split, part)) for part in ("val", "test")}
        row = {"run": run.name, "model": path.stem, "temperature": round(temperature, 3)}
        for part in ("val", "test"):
            row[part] = {"ece": [plain[part][0], scaled[part][0]],
                         "nll": [plain[part][1], scaled[part][1]]}  # fmt: skip
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

"""``frugalseg bench``'s core: the matrix, train-or-skip, records, tables, annotation cost, papers' numbers, figures.

Small modules, each usable alone (``scripts/compare_methods.py`` uses the rows, the runner, the records and the
tables):

- :mod:`~frugalseg.bench.matrix`: rows (``label=config[,key=value...]``) and budgets, from ``matrix.yaml``;
- :mod:`~frugalseg.bench.runner`: train one row with one seed unless finished, score its checkpoints, record it;
- :mod:`~frugalseg.bench.records`: a finished run's record, small enough to commit, the pages' sole input;
- :mod:`~frugalseg.bench.parallel`: several row x seed runs side by side in child processes (``--jobs``);
- :mod:`~frugalseg.bench.tables`: mean ± std over seeds, Markdown tables;
- :mod:`~frugalseg.bench.cost`: annotator-seconds of an annotation file (``cost_model.yaml``);
- :mod:`~frugalseg.bench.papers`: the papers' reported numbers with their sources (``paper_results.yaml``);
- :mod:`~frugalseg.bench.figures`: Dice against cost, prediction panels;
- :mod:`~frugalseg.bench.report`: the results page; :mod:`~frugalseg.bench.provenance`: date, commit, machine.

The command itself (the order of work, the files written) is :mod:`frugalseg.commands.bench`.
"""

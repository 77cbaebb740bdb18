"""``frugalseg bench``'s core: the matrix, train-or-skip, records, tables, annotation cost, papers' numbers, figures.

Small modules with one job each, usable alone; ``frugalseg bench`` (:mod:`frugalseg.commands.bench`) only turns
its arguments into :class:`~frugalseg.bench.options.BenchOptions` and calls :func:`~frugalseg.bench.session.run_bench`:

- :mod:`~frugalseg.bench.options`: what a bench was asked (matrix rows or ``--row`` rows, seeds, folders);
- :mod:`~frugalseg.bench.session`: one invocation in order: check, train, record, write the page;
- :mod:`~frugalseg.bench.plan`: the rows' configs and time estimates (``--list``);
- :mod:`~frugalseg.bench.training`: train the unfinished rows, in this process or ``--jobs`` side by side;
- :mod:`~frugalseg.bench.collect`: the rows read back from the store of records, checked against their rows;
- :mod:`~frugalseg.bench.results_page`: ``docs/results.md``, its CSVs and figures;
- :mod:`~frugalseg.bench.method_block`: the tables of ``--row`` rows, written into a block of a method page;

- :mod:`~frugalseg.bench.matrix`: rows (``label=config[,key=value...]``) and budgets, from ``matrix.yaml``;
- :mod:`~frugalseg.bench.runner`: train one row with one seed unless finished, score its checkpoints, record it;
- :mod:`~frugalseg.bench.records`: a finished run's record, small enough to commit, the pages' sole input;
- :mod:`~frugalseg.bench.parallel`: several row x seed runs side by side in child processes (``--jobs``);
- :mod:`~frugalseg.bench.tables`: mean ± std over seeds, Markdown tables;
- :mod:`~frugalseg.bench.cost`: annotator-seconds of an annotation file (``cost_model.yaml``);
- :mod:`~frugalseg.bench.papers`: the papers' reported numbers with their sources (``paper_results.yaml``);
- :mod:`~frugalseg.bench.figures`: Dice against cost, prediction panels;
- :mod:`~frugalseg.bench.report`: the results page's Markdown; :mod:`~frugalseg.bench.provenance`: date, commit,
  machine;
- :mod:`~frugalseg.bench.run_evidence`: what the scripts that re-read kept run folders share (arguments, the
  runs checked against their records, what they measured kept beside the records, their page block).

The bench is a client of the library's public API (configs, the trainer, ``frugalseg.evaluation``), never of
the command line: nothing here imports :mod:`frugalseg.commands`.
"""

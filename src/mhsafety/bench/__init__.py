"""The bench: published safety test sets as Inspect tasks, run against any system.

Data bundles (:mod:`.bundles`), the multi-turn solver and grading scorer (:mod:`.tasks`),
the scoring rules (:mod:`.scoring`, pure), our model APIs (:mod:`.models`), the runner
(:mod:`.runner`), results and report (:mod:`.results`, :mod:`.report`).
"""

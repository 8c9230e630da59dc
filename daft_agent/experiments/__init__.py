"""The paper's experiments on one shared runner (:mod:`.runner`, a Ray Tune grid).

Table I (:mod:`.table1`), Fig. 5 (:mod:`.curves`), RQ4 (:mod:`.long_horizon`).
"""

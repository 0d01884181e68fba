"""The conformance suite, shipped: every engine (built-in or plug-in) must compute what the numpy
float64 reference computes. Run it from any environment where rshop is installed::

    pytest --pyargs rshop_backends.conformance --rshop-engines=torch

Its parts: ``cases`` and ``composition_cases`` (the models), ``tolerances`` (the one table),
``runs`` (running a model on an engine and comparing: ``run``, ``reference``, ``harness``,
``central_differences``, ``assert_close``), ``xfail_lists`` (known gaps per engine) and the
``test_*`` modules. See docs/engines.md, "Certify your engine".
"""

"""tradewire's conformance suite: runner, cases, testee protocol and the Python testee.

    tradewire conformance --testee "python -m tradewire.conformance.testee"

See conformance/README.md (users) and conformance/TESTEE.md (the testee protocol).
"""

"""Pure logic, no I/O: actions, results, risk, the policy language and its compiled matcher."""

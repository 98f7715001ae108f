"""The original README's starter policy, shared by the tests that exercise it."""

QUICKSTART_POLICY = """
version: "1"
defaults:
  risk_level: medium
  approval: approve
rules:
  - name: read_safe
    match: { type: "read*" }
    risk_level: low
    approval: auto
  - name: bulk_ops_need_approval
    match: { type: "bulk_*" }
    conditions:
      param_gt: { count: 100 }
    risk_level: high
    approval: approve
  - name: no_deletes
    match: { type: "delete*" }
    risk_level: critical
    approval: block
"""

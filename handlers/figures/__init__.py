"""The movement's figures for supervisors: /stats, the movement report, charts."""

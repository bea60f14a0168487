"""The accelerated soak of the whole service (issue 22 item 1); README.md in this folder."""

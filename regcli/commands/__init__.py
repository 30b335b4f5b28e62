"""The read commands, one module each: they read run and sweep directories back, never train.

`diagnose` (verdict and recommendations), `final_test` (`regcli test`, with its `ledger`),
`compare`, `listing` (`regcli ls`), `report` (the HTML report) and `init` (starter specs and
`regcli schema`); `several` reads many run directories all-or-nothing for `diagnose` and `report`. Every run directory is read through `regcli.rundir.RunFiles`. Importing this
package imports nothing else: `regcli --help` stays instant.
"""

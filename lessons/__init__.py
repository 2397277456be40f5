"""The lessons, and the worked-example app they draw their code from (lending/)."""

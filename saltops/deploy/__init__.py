"""Deploys: plan batches over the CMDB targets, drive the minion module, record everything.

``plan`` spreads hosts into batches; ``machine`` holds the deploy and host
state machines; ``lock`` the one-deploy-per-app-and-env lock; ``history`` the
records; ``engine`` runs a deploy through an executor (the runner passes one
over Salt's LocalClient); ``targets`` reads the CMDB.
"""

"""The central registry service (runs on a server, never imported by the desktop code).

This first version serves its health endpoint; enrolment, sealed results and the model
catalogue are built on it (see the registry issue).
"""

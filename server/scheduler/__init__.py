"""Scheduled background jobs: the scheduler service, the job state, the REST routes."""

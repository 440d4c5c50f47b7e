"""Saga coordinator for API flows over Apache Kafka."""

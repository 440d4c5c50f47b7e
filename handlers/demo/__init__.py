"""The demo shop: HTTP services, a Kafka-native inventory service, the order-details flow."""

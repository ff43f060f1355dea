//! The integration-test harness.

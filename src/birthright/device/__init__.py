"""The reference device agent."""

"""The line: the dialogue (a pure state machine per channel), the runner that plays one turn against
the records, and the Twilio webhooks for voice and SMS."""

"""Pure decisions of hotdesk: no database, HTTP or platform SDK imports here."""

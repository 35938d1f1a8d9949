"""Contacts: keep each person's Outlook contacts, the directory and org contacts indexed."""

from m365pbx.sync.contacts.entries import contact_entry, directory_entries
from m365pbx.sync.contacts.reader import ContactsPlan, ContactsStatus, ContactsSync

__all__ = ["ContactsPlan", "ContactsStatus", "ContactsSync", "contact_entry",
           "directory_entries"]

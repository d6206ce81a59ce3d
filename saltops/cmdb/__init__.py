"""The CMDB: host records, their validation, storage, import/export and snapshot."""

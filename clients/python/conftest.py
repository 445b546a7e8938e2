# Makes `execd_client` importable when pytest runs from the repository root or from clients/python.

import numpy as np

def event_lines(heads: np.ndarray, blanks: np.ndarray, tails: np.ndarray, tail_ends: np.ndarray,
                texts: np.ndarray, text_ends: np.ndarray, uuid: np.ndarray, company: np.ndarray, driver: np.ndarray,
                truck: np.ndarray, event_type: np.ndarray, timestamp_ms: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                company_text: np.ndarray, type_text: np.ndarray, patch_row: np.ndarray, patch_field: np.ndarray,
                patch_absent: np.ndarray, patch_values: np.ndarray) -> bytearray: ...

def join_lines(keys: bytes, key_ends: np.ndarray, fields: list[np.ndarray],
               absent: list[np.ndarray | None]) -> bytearray: ...

def hash_into(a: np.ndarray, b: np.ndarray, out: np.ndarray, as_uniform: bool) -> None: ...

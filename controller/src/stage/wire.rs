//! The two limit requests staging and starting send, as warden's
//! `limit_memory.proto` and `limit_disk.proto` define them (field numbers
//! included), for the client side only: the server decodes them in its own
//! module. Framing is [`crate::proto`]'s.

use serde::Serialize;

/// `LimitMemoryRequest`: `handle` 1, `limit_in_bytes` 2.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitMemoryRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(uint64, optional, tag = "2")]
    pub limit_in_bytes: Option<u64>,
}

/// `LimitMemoryResponse`: `limit_in_bytes` 1.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitMemoryResponse {
    #[prost(uint64, optional, tag = "1")]
    pub limit_in_bytes: Option<u64>,
}

/// `LimitDiskRequest`: `handle` 1; the byte limit is `byte_limit` 30 (an
/// alias of `byte_hard` 33), the inode limit `inode_limit` 20.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitDiskRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(uint64, optional, tag = "20")]
    pub inode_limit: Option<u64>,
    #[prost(uint64, optional, tag = "30")]
    pub byte_limit: Option<u64>,
}

/// `LimitDiskResponse`: the fields staging reads (`byte_limit` 30,
/// `byte_hard` 33); the others are skipped by the decoder.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitDiskResponse {
    #[prost(uint64, optional, tag = "30")]
    pub byte_limit: Option<u64>,
    #[prost(uint64, optional, tag = "33")]
    pub byte_hard: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn field_numbers_match_warden() {
        let m = LimitMemoryRequest {
            handle: Some("h".into()),
            limit_in_bytes: Some(5),
        };
        assert_eq!(m.encode_to_vec(), vec![0x0a, 1, b'h', 0x10, 5]);
        let d = LimitDiskRequest {
            handle: None,
            inode_limit: Some(1),
            byte_limit: Some(2),
        };
        // 20 << 3 = 160 = 0xa0 0x01; 30 << 3 = 240 = 0xf0 0x01.
        assert_eq!(d.encode_to_vec(), vec![0xa0, 0x01, 1, 0xf0, 0x01, 2]);
    }
}

//! HTTP/1.1 static serving (being written).

pub mod flowset;

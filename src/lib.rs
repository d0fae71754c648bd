//! Tracecoder: open coding of LLM traces as one server-rendered binary.
//!
//! `main.rs` only parses the command line; everything it runs lives here so the tests build
//! exactly the same application.

pub mod app;
pub mod auth;
pub mod cli;
pub mod cli_codebook;
pub mod cli_review;
pub mod codebook;
pub mod codebook_cache;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod export;
pub mod import;
pub mod judges;
pub mod memory;
pub mod review;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod web;

pub use app::Application;
pub use config::Config;

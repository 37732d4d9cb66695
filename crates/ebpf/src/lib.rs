pub mod app;
pub mod dns;
pub mod flows;
pub mod load;
pub mod support;
pub mod sys;

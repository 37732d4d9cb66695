pub mod app;
pub mod flows;
pub mod load;

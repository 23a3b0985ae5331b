//! `tokentray repair`: a damaged history, kept as a copy and rebuilt from what SQLite can read
//! (core's `store::repair`). An engine refuses to start on a damaged history and names this
//! command; a healthy one is left alone.

use std::process::ExitCode;

use tokentray_core::config::Config;
use tokentray_core::store::{self, RepairOutcome, RepairReport};

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let data_dir = super::existing_data_dir(config)?;
    match store::repair(&data_dir)? {
        RepairOutcome::Healthy => {
            println!(
                "the history in {} passes the integrity check; nothing to repair",
                data_dir.display()
            );
        }
        RepairOutcome::Repaired(report) => print_report(&report),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &RepairReport) {
    println!("kept the damaged file as {}", report.backup.display());
    if let Some(wal) = &report.backup_wal {
        println!("kept its write-ahead log as {}", wal.display());
    }
    if report.header_rebuilt {
        println!("its header was damaged: read it with a rebuilt one");
    }
    if report.wal_discarded {
        println!("its write-ahead log was not a SQLite log: left out (the kept copy has it)");
    }
    if !report.schema_readable {
        println!("its schema cannot be read, so no table could be found: the new history is empty (restore a backup if you have one)");
    }
    for table in &report.tables {
        let lost = if table.rows_lost { ", some rows could not be read" } else { "" };
        println!("  {:<24} {:>10} rows recovered{lost}", table.table, table.rows);
    }
    let lost = report.tables.iter().filter(|t| t.rows_lost).count();
    println!(
        "repaired: {} tables, {lost} with unreadable rows; start tokentray again",
        report.tables.len()
    );
}

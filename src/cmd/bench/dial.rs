//! How a test reaches the listener: an msock session dialled as the flags ask, or one plain
//! TCP connection; either way the transport moves the ends of a bench link and the domain's
//! client ([`crate::bench::client`]) runs the test over it.

use crate::bench::client::Show;
use crate::bench::model::Params;
use crate::bench::run::Run;
use crate::bench::{self, client, tcp};
use crate::cli::BenchArgs;
use crate::cmd::dial::{check_dest, dial_with_policy};
use crate::cmd::{ctrl_c, family, Failure};
use crate::proto::Service;
use crate::runtime::policy::Policy;

/// How a test reaches the listener.
#[derive(Clone)]
pub(crate) enum Via {
    /// An msock session, its flowpaths chosen by this policy.
    Session(Policy),
    /// One plain TCP connection.
    Tcp,
}

/// Runs one test against `dest`, showing its progress on `out`.
pub(crate) async fn run_test(
    dest: &str,
    args: &BenchArgs,
    via: Via,
    params: &Params,
    show: &impl Show,
) -> Result<Run, Failure> {
    let (ends, link) = bench::link();
    match via {
        Via::Session(policy) => {
            let mut driver = dial_with_policy(
                dest,
                &args.dial,
                &args.stream,
                policy,
                Service::Bench,
                Some(ends.source),
                Some(ends.sink),
            )
            .await?;
            driver.set_probe(ends.probe);
            driver.set_interrupt(ctrl_c());
            let transport = async move { driver.run().await.0 };
            Ok(client::run(link, transport, params, dest, "msock", show).await?)
        }
        Via::Tcp => {
            check_dest(dest)?;
            let family = family(&args.stream);
            let stream = tcp::connect(dest, family, args.dial.source, args.dial.wait).await?;
            let stall = args.stream.dead_time;
            let transport = tcp::pump(stream, ends, stall, Some(Box::pin(ctrl_c())));
            Ok(client::run(link, transport, params, dest, "TCP", show).await?)
        }
    }
}

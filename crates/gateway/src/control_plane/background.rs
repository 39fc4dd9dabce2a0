//! The control plane's loops: route recalibration, control changes, SLO
//! evaluation, the rollout controller, content retention and the Batch API's worker. Started with the server,
//! aborted at shutdown ([`Background::stop`], which saves the SLO state last).

use std::sync::Arc;

use futures::StreamExt;
use switchyard_control::Config;
use switchyard_store::StoreError;

use super::state::ControlPlane;

/// The loops of a running control plane.
pub struct Background {
    control: Arc<ControlPlane>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The name the batch worker claims lines under, when it runs.
    batch_owner: Option<String>,
}

impl Background {
    /// Starts every loop the config needs.
    pub fn start(control: &Arc<ControlPlane>, config: &Config) -> Self {
        let mut tasks = vec![
            control_loop(control),
            rollout_loop(control),
            slo_loop(control),
            super::retention::purge_loop(control.clone()),
        ];
        tasks.extend(recalibration_loop(control, config));
        // `[batch] concurrency = 0`: this replica serves the Batch API but runs no lines.
        let batch_owner = (config.batch.concurrency > 0).then(|| {
            let owner = super::batches::worker::owner_name(control);
            tasks.push(super::batches::worker::start(control, owner.clone()));
            owner
        });
        Background {
            control: control.clone(),
            tasks,
            batch_owner,
        }
    }

    /// Aborts the loops, then saves the SLO state (the SLO loop saves it only every 30 s); in
    /// a fleet, publishes this replica's last counts and gives the judge's lease up. The batch
    /// lines this replica held go back to the queue.
    pub async fn stop(self) {
        for task in self.tasks {
            task.abort();
            // Its lines in flight are dropped before they are given back.
            let _ = task.await;
        }
        let control = self.control;
        let batch_owner = self.batch_owner;
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(owner) = &batch_owner {
                super::batches::worker::release(&*control.store, owner);
            }
            if let Some(fleet) = &control.fleet {
                let now = chrono::Utc::now().timestamp_millis();
                if let Err(e) = control.slos.publish(&*control.store, &fleet.replica, now) {
                    tracing::warn!(error = %e, "publishing the last SLO counts failed");
                }
                fleet.release(&*control.store);
            }
            control.slos.save(&*control.store)
        })
        .await;
    }
}

/// Recalibrates routes from feedback every `recalibrate.interval` (the shortest of the
/// routes'), off the async threads; `None` when no route recalibrates.
fn recalibration_loop(
    control: &Arc<ControlPlane>,
    config: &Config,
) -> Option<tokio::task::JoinHandle<()>> {
    let every = config
        .routes
        .values()
        .filter_map(|r| r.recalibrate.map(|rc| rc.interval))
        .min()?;
    let state = control.clone();
    #[expect(
        clippy::disallowed_methods,
        reason = "aborted at shutdown; each step is one transaction"
    )]
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await; // the first tick is immediate; start-up already restored bars
        loop {
            tick.tick().await;
            let pipeline = state.running.pipeline.load_full();
            let store = state.store.clone();
            let step = tokio::task::spawn_blocking(move || {
                super::calibrate::run_once(
                    &pipeline,
                    &*store,
                    chrono::Utc::now().timestamp_millis(),
                )
            })
            .await;
            if let Ok(Err(e)) = step {
                tracing::warn!(error = %e, "route recalibration failed; will retry");
            }
        }
    });
    Some(task)
}

/// Reads flags and prompts again at each wake-up of the change feed (`changes.rs`: every
/// second today), so a flag flipped on another replica (or by a CLI writing the same store)
/// takes effect here too.
fn control_loop(control: &Arc<ControlPlane>) -> tokio::task::JoinHandle<()> {
    let state = control.clone();
    #[expect(
        clippy::disallowed_methods,
        reason = "aborted at shutdown; it holds no state of its own"
    )]
    tokio::spawn(async move {
        let mut wakeups = state.changes.wakeups();
        while wakeups.next().await.is_some() {
            let s = state.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.refresh_control()).await {
                tracing::warn!(error = %e, "reading flags and prompts failed; keeping the ones in force");
            }
        }
    })
}

/// Evaluates the SLOs' alerts every 30 s, acts on each change (`slos::act`: log, webhook,
/// rollouts paused or aborted on a page) and saves the state (`slos.rs`, 2.). In a fleet,
/// every 5 s: this replica's ledger published, and the judge evaluates everyone's.
fn slo_loop(control: &Arc<ControlPlane>) -> tokio::task::JoinHandle<()> {
    let state = control.clone();
    #[expect(
        clippy::disallowed_methods,
        reason = "aborted at shutdown, which saves the state itself"
    )]
    tokio::spawn(async move {
        // The providers' client: redirects are not followed.
        let client = match switchyard_providers::http_client(std::time::Duration::from_secs(5)) {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the HTTP client for SLO alerts; SLOs are not evaluated");
                return;
            }
        };
        let every = match state.fleet {
            Some(_) => FLEET_SLO_EVERY,
            None => std::time::Duration::from_secs(30),
        };
        let mut tick = tokio::time::interval(every);
        // Whether this replica judged at the last tick: one that takes over reads the alert
        // engine the last judge saved.
        let mut judged = false;
        loop {
            tick.tick().await;
            let s = state.clone();
            let was_judge = judged;
            let evaluated = tokio::task::spawn_blocking(move || {
                let now = chrono::Utc::now();
                let Some(fleet) = &s.fleet else {
                    let events = s.slos.evaluate(now.timestamp());
                    if let Err(e) = s.slos.save(&*s.store) {
                        tracing::warn!(error = %e, "saving the SLO state failed; will retry");
                    }
                    page_actions(&s);
                    return (events, false);
                };
                let now_ms = now.timestamp_millis();
                if let Err(e) = s.slos.publish(&*s.store, &fleet.replica, now_ms) {
                    tracing::warn!(error = %e, "publishing the SLO counts failed; will retry");
                }
                fleet.count_live(&*s.store, now_ms);
                if !fleet.judges(&*s.store, now_ms).now {
                    return (Vec::new(), false);
                }
                match s.slos.evaluate_fleet(&*s.store, now.timestamp(), !was_judge) {
                    Ok(events) => {
                        page_actions(&s);
                        (events, true)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "evaluating the fleet's SLOs failed; will retry");
                        (Vec::new(), false)
                    }
                }
            })
            .await;
            let events = match evaluated {
                Ok((events, judging)) => {
                    judged = judging;
                    events
                }
                Err(_) => Vec::new(),
            };
            super::alerts::act(&state, &events, &client).await;
        }
    })
}

/// Puts the SLOs' page actions in force, or ends them (`slo_actions.rs`). Blocks.
fn page_actions(state: &Arc<ControlPlane>) {
    if let Err(e) = super::slo_actions::reconcile(state) {
        tracing::warn!(error = %e, "the SLOs' page actions could not be applied; will retry");
    }
}

/// How often a replica of a fleet publishes its SLO counts (and the judge evaluates them):
/// the delay a fast-burn alert can add to its own window.
const FLEET_SLO_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The rollout controller (`rollouts::step`): on every outcome a rollout's arm reports,
/// and every second. In a fleet, every second: this replica's windows published, and the
/// judge's step on everyone's (`fleet.rs`).
fn rollout_loop(control: &Arc<ControlPlane>) -> tokio::task::JoinHandle<()> {
    let state = control.clone();
    #[expect(
        clippy::disallowed_methods,
        reason = "aborted at shutdown; each step is one transaction"
    )]
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            let stats = state.running.live.load().stats.clone();
            match &state.fleet {
                Some(_) => {
                    tick.tick().await;
                }
                None => {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = stats.wake.notified() => {}
                    }
                    if state.running.live.load().rollouts.is_empty() {
                        continue;
                    }
                }
            }
            let _one = state.rolling.lock().await;
            let s = state.clone();
            let step = tokio::task::spawn_blocking(move || {
                let now = chrono::Utc::now().timestamp_millis();
                let made = match &s.fleet {
                    None => super::rollouts::step(&*s.store, &stats, now)?,
                    Some(fleet) => {
                        super::rollouts::publish_windows(&*s.store, &fleet.replica, &stats, now)?;
                        if !fleet.judges(&*s.store, now).now {
                            return Ok(Vec::new());
                        }
                        let prompts = &s.running.live.load().prompts;
                        super::rollouts::step_fleet(&*s.store, &stats, prompts, now)?
                    }
                };
                if !made.is_empty() {
                    s.changed()?;
                }
                Ok::<_, StoreError>(made)
            })
            .await;
            match step {
                Ok(Ok(made)) => {
                    for rollout in made {
                        super::rollouts::settle_config(&state, &rollout).await;
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the rollout controller failed; will retry")
                }
                Err(_) => tracing::warn!("the rollout controller's task failed; will retry"),
            }
            // Under load every answer wakes the controller: looking at most every 10 ms
            // keeps it to one store read per batch of outcomes.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
}

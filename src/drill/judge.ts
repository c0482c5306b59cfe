/**
 * The drill's verdict: what the plan promised against what the recovered server reports, and
 * the soundness checks. Pure.
 */
import type { Plan } from '../recovery/plan.js';
import { isoToMicros } from '../time.js';
import type { Reached } from './inspect.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** Whether recovery reached the point `plan` promised: the timeline it branched from and the last transaction it replayed. */
export function judgeReached(plan: Plan, r: Reached): Check[] {
  const checks: Check[] = [];
  checks.push({
    name: 'timeline',
    ok: r.parentTimeline === plan.timeline,
    detail:
      r.parentTimeline === plan.timeline
        ? `recovered along timeline ${plan.timeline}, promoted to timeline ${r.timeline}`
        : r.parentTimeline === null
          ? `the server did not branch a new timeline (it writes on ${r.timeline}); the plan recovers along timeline ${plan.timeline}`
          : `the server branched from timeline ${r.parentTimeline}; the plan recovers along timeline ${plan.timeline}`,
  });
  const promised = plan.replayed.lastXact;
  const got = isoToMicros(r.lastXactTime);
  const want = promised ? isoToMicros(promised.time) : null;
  const said = promised ? `transaction ${promised.xid} at ${promised.time}` : 'none';
  let ok: boolean;
  if (plan.replayed.exact) ok = got === want;
  else ok = want === null || (got !== null && got >= want);
  checks.push({
    name: 'last transaction',
    ok,
    detail: `the last transaction replayed ended at ${r.lastXactTime ?? '(none)'}; the plan promised ${plan.replayed.exact ? '' : 'at least '}${said}`,
  });
  return checks;
}

export type Verdict = 'passed' | 'failed';

export function verdictOf(checks: readonly Check[]): Verdict {
  return checks.length > 0 && checks.every((c) => c.ok) ? 'passed' : 'failed';
}

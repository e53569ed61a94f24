import { redirect } from '@sveltejs/kit';
import { routeForEventHistory } from '@temporalio/ui/utilities/route-for';

/** A load function for an older address of a run's history: it moves to the history page. */
export function toHistory({ params }) {
  redirect(302, routeForEventHistory({ namespace: params.namespace, workflow: params.workflow, run: params.run }));
}

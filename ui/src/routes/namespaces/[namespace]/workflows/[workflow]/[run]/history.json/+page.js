import { redirect } from '@sveltejs/kit';
import { getEndpointForRawHistory } from '@temporalio/ui/services/events-service';

// The download of a run's history: served by Aion under /api/v1.
export async function load({ params, parent }) {
  await parent();
  redirect(302, getEndpointForRawHistory({ namespace: params.namespace, workflowId: params.workflow, runId: params.run }));
}

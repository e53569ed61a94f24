import { redirect } from '@sveltejs/kit';
import { get } from 'svelte/store';
import { fetchWorkflowForAuthorization } from '@temporalio/ui/services/workflow-service';
import { lastUsedNamespace } from '@temporalio/ui/stores/namespaces';
import { routeForNamespaceSelector, routeForWorkflows } from '@temporalio/ui/utilities/route-for';

// The start page: the workflows of the namespace used last (else the default one).
export async function load({ parent }) {
  const { settings } = await parent();
  const namespace = get(lastUsedNamespace) || settings.defaultNamespace;
  const { authorized } = await fetchWorkflowForAuthorization(namespace).catch(() => ({}));
  redirect(302, authorized ? routeForWorkflows({ namespace }) : routeForNamespaceSelector());
}

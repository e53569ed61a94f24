// Every page renders in the browser: Aion serves index.html for any path (the SPA fallback).
import i18next from 'i18next';
import LanguageDetector from 'i18next-browser-languagedetector';
import { i18nNamespaces } from '@temporalio/ui/i18n/index';
import locales from '@temporalio/ui/i18n/locales/index';
import { fetchCluster, fetchSystemInfo } from '@temporalio/ui/services/cluster-service';
import { fetchNamespaces } from '@temporalio/ui/services/namespaces-service';
import { fetchSettings } from '@temporalio/ui/services/settings-service';

export const ssr = false;
export const prerender = false;

i18next.use(LanguageDetector).init({
  resources: locales,
  ns: i18nNamespaces,
  defaultNS: 'common',
  fallbackLng: 'en',
  load: 'languageOnly',
  detection: { order: ['querystring', 'localStorage', 'navigator'], caches: ['localStorage'] },
});

export async function load({ fetch }) {
  const settings = await fetchSettings(fetch);
  fetchNamespaces(settings, fetch);
  const [cluster, systemInfo] = await Promise.all([
    fetchCluster(settings, fetch),
    fetchSystemInfo(settings, fetch),
  ]);
  return { settings, cluster, systemInfo };
}

"""MLflow models-from-code entry: logged as the pyfunc's code, so no Python object is pickled.

MLflow executes this file when the model is loaded; it needs the lapse package installed.
"""

from mlflow.models import set_model

from models.pyfunc import DropoutRiskModel

set_model(DropoutRiskModel())
